"""`make bench`: measure the MaaS pipeline next to the ceilings of the parts it stands on."""
