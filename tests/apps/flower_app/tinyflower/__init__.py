"""The tiny test app (``tests.apps.tiny``) packaged as a Flower app directory."""
