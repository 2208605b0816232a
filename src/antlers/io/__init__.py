"""Files in and out: atomic writes (``files``), the user's image files (``images``) and the
bundled sample photos (``photos``)."""
