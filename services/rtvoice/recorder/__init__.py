"""rtvoice.recorder: archives sessions (``rtvoice recorder``) and reads them back (``rtvoice sessions``)."""
