"""/openapi.json, /docs and /redoc: the API's own documentation, working offline.

The pages check the caller's key as every API route does (open while auth is off). The HTML pages,
which a browser opens with ?api_key= (api/auth.py), carry the schema inline: their script could not
send the key to fetch /openapi.json, and the key goes no further. Their scripts and styles are served
by this server from the files the ``fastapi-offline`` package ships (Swagger UI, ReDoc), never from a
CDN: the docs must work on a machine without internet.
"""

from __future__ import annotations

import json
from pathlib import Path

import fastapi_offline
from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse, JSONResponse
from starlette.staticfiles import StaticFiles

from llmserve.api.auth import authenticate

ASSETS_PATH = "/docs-assets"
ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"


def _inline_json(value: object) -> str:
    """JSON safe inside a <script> element."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def include_docs(app: FastAPI) -> None:
    guarded = [Depends(authenticate)]
    app.mount(ASSETS_PATH, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

    @app.get("/openapi.json", include_in_schema=False, dependencies=guarded)
    async def openapi_document() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=guarded)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",  # not fetched: Swagger UI uses ``spec`` when it is given
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
            oauth2_redirect_url=None,
            swagger_ui_parameters={"spec": app.openapi()},
        )

    @app.get("/redoc", include_in_schema=False, dependencies=guarded)
    async def redoc() -> HTMLResponse:
        return HTMLResponse(
            f"<!DOCTYPE html><html><head><title>{app.title} - ReDoc</title><meta charset='utf-8'/>"
            f"<link rel='icon' href='{ASSETS_PATH}/favicon.png'/></head><body><div id='redoc'></div>"
            f"<script src='{ASSETS_PATH}/redoc.standalone.js'></script><script>"
            f"Redoc.init({_inline_json(app.openapi())}, {{}}, document.getElementById('redoc'));"
            "</script></body></html>"
        )
