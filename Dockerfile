# The WikiStreams producer (and the Druid supervisor tool used by the druid-init service).
FROM python:3.11.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11.11-slim
# /data holds only the optional SQLite label cache (CACHE_BACKEND=sqlite); the resume position
# lives in Kafka (KAFKA_POSITION_TOPIC), so the container is otherwise stateless.
RUN useradd --create-home --uid 10001 wikistreams && mkdir /data && chown wikistreams /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
WORKDIR /app
COPY druid ./druid
USER wikistreams
ENV PYTHONUNBUFFERED=1 CACHE_DB_PATH=/data/labels.sqlite3
# SIGTERM: stop reading, commit the open Kafka transaction with the position, exit 0
# (a standby just leaves the lease group).
STOPSIGNAL SIGTERM
CMD ["wikistreams-producer"]
