"""Placeholder: WebSocketApp is being written (see docs/python.md)."""


class WebSocketApp:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError("WebSocketApp is not implemented yet in floodgate's Python package")
