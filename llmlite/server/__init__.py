"""`llmlite serve`: the local HTTP API (OpenAI- and Ollama-compatible) over one resident model.

    app.py         the Starlette app: routers, API key, body limit, CORS, error handlers
    errors.py      ApiError and the OpenAI-style JSON body every error gets
    requests.py    request bodies read and checked into generation requests
    engine.py      the resident model and the one worker that generates, a bounded queue
    openai_api.py  /v1/chat/completions, /v1/completions, /v1/models, /v1/embeddings
    ollama_api.py  /api/chat, /api/generate, /api/tags, /api/show, /api/ps, /api/version, /api/embed
    ollama_models.py  what /api/tags and /api/show say of a GGUF file, read without loading it
    streams.py     a generation awaited while its client is there; a whole answer gathered

Each API is a router module listed in app.ROUTERS, over the same engine and request checks.
"""
