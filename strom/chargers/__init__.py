"""Chargers as strom's core sees them, whatever protocol they speak."""
