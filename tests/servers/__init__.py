"""Local test servers that speak the real protocols of the services AutoPicker talks to."""
