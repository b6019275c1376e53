"""latsep.worker."""
