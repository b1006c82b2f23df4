"""The domain: what a job is, the operations and their parameters, media inputs and errors.

The leaf of the package graph: it imports nothing else of the application, and every other
part may import it.
"""
