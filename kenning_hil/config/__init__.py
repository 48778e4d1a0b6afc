"""Configuration: the options table (flag = ini key = fixture), settings resolution, the
composition root."""
