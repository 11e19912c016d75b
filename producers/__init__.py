"""appraise producers: publish listings, drift scenarios, sale labels, replay."""
