"""An example plugin package for the Speech-FT harness."""
