"""The live view of `appraise up`: metric pages and alerts in, a terminal view or a status line
out."""
