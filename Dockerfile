# The Python services (relays and projection workers): one image, one CLI command each.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY relay ./relay
COPY projections ./projections
COPY softphone_relay ./softphone_relay
COPY clientjs ./clientjs
RUN pip install --no-cache-dir . && useradd --system --uid 10001 relay
USER relay
ENV SOFTPHONE_RELAY_HOST=0.0.0.0 SOFTPHONE_RELAY_PORT=8765
EXPOSE 8765 8766 9108
ENTRYPOINT ["softphone-relay"]
CMD ["serve"]
