"""Thin discord.py adapters: parse the interaction, call the domain, render the answer."""
