"""Talking to Amazon over HTTP: Login with Amazon, the error mapping, the usage plans' rate
limits and reading an answer's body. Everything a request needs before and after it is sent."""
