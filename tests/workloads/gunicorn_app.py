"""The smallest WSGI application, for gunicorn under continuous profiling (test_continuous.py)."""


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\n"]
