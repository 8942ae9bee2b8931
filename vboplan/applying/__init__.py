"""Carrying out an approved plan: ordered writes, the write journal, read-back, and the state snapshot."""
