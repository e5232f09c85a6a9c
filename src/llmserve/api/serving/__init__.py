"""Serving: one module per surface that turns a parsed wire request into one pipeline call, and the
pipeline's answer into that surface's full JSON body or its stream, with the headers.

Routes (api/routes/) parse, call one function here, and send JSON or SSE. A new protocol surface is
one more module here over the same ``ChatService``.
"""
