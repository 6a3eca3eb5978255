"""TLS for strom's public HTTP and OCPP `wss`: an operator's own certificate or one obtained
and renewed by ACME (HTTP-01 answered by strom's own HTTP server), hot reloaded."""
