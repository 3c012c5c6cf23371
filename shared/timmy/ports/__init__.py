"""The ports: one small module per outside thing the domain talks to, each a `typing.Protocol`.

Adapters (`timmy.adapters`) implement them; `timmy_http.services` is the one place that picks an
adapter by configuration and hands it to the use cases. Domain code imports only these.
"""
