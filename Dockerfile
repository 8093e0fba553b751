# One image for every Paved service; the command picks the service.
FROM python:3.11-slim AS build
RUN pip install --no-cache-dir "uv==0.13.9"
WORKDIR /src
COPY pyproject.toml uv.lock ./
COPY schemas schemas
COPY shared shared
COPY services services
RUN uv sync --frozen --all-packages --no-dev --no-editable

FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends bubblewrap \
    && rm -rf /var/lib/apt/lists/* && useradd --uid 10001 --create-home paved
COPY --from=build /src/.venv /opt/paved
ENV PATH=/opt/paved/bin:$PATH PYTHONUNBUFFERED=1
USER 10001
CMD ["python", "-m", "paved_registry"]
