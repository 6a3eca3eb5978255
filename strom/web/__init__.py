"""HTTP interface: pages, LNURL, REST API (Starlette, served by uvicorn on strom's loop)."""
