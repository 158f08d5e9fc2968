"""Recipes: networks described in code on top of the core (the legacy L5 input network).

A recipe turns its own params into the core's vocabulary and uses the core's writers; it knows
no simulator and no command.
"""
