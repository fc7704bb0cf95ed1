# The Python services (relays and projection workers): one image, one CLI command each.
# The image runs the same wheel users install: built in a first stage, installed in the second.
# The Salesforce Voice connector: our code and the pinned @salesforce/scv-connector-base, bundled.
FROM node:20-slim AS connector
WORKDIR /src/clientjs
COPY clientjs/package.json clientjs/package-lock.json clientjs/.npmrc ./
RUN npm ci --no-audit --no-fund
COPY clientjs/connector ./connector
RUN npm run build

FROM python:3.11-slim AS wheel
WORKDIR /src
COPY pyproject.toml setup.py README.md constraints.txt ./
COPY relay ./relay
COPY projections ./projections
COPY clientjs ./clientjs
COPY --from=connector /src/clientjs/connector.js ./clientjs/connector.js
COPY softphone_relay ./softphone_relay
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

FROM python:3.11-slim
COPY --from=wheel /dist /dist
COPY --from=wheel /src/constraints.txt /dist/
RUN pip install --no-cache-dir -c /dist/constraints.txt /dist/*.whl && rm -r /dist && useradd --system --uid 10001 relay \
    && mkdir -p /var/lib/softphone-relay/archive && chown relay /var/lib/softphone-relay/archive
USER relay
WORKDIR /home/relay
ENV SOFTPHONE_RELAY_HOST=0.0.0.0 SOFTPHONE_RELAY_PORT=8765
EXPOSE 8765 8766 9108
ENTRYPOINT ["softphone-relay"]
CMD ["serve"]
