"""latsep.service."""
