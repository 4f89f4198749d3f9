"""rtvoice.recorder: archives sessions (``rtvoice recorder``) and reads them back (``rtvoice sessions``)."""

# The span a RecorderLink sends right before `end`: its drop counters (attributes spans_dropped,
# frames_dropped), so the manifest counts drops that happened while the stream stayed open.
LINK_STATS_SPAN = "rtvoice.record_link.stats"
