"""Batched generation of translations and their sacreBLEU scores."""
