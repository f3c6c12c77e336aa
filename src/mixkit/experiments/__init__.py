"""Experiment and report code on top of the library: tables, figures and doc writers."""
