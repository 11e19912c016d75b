"""The bundled data set (``ames.csv.gz``), its provenance, and the script that extracted it."""
