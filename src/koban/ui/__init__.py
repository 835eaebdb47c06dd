"""The web UI: server-rendered pages over the public JSON API.

Pages render a shell (header, search bar, time range) from the URL's query string;
their scripts in static/ read the same query string, fetch /api/* like any other
client, and keep every piece of state (q, from, to, selection) in the URL.
"""
