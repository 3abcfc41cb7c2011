# Multi-stage build: a static binary on a distroless base, running as a
# non-root user, with the data directory (queue, certificates) on a volume.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags "-s -w -X github.com/edgerelay/edgerelay/relay.Version=${VERSION}" \
      -o /out/edgerelay ./cmd/edgerelay \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/edgerelay /usr/local/bin/edgerelay
COPY --from=build --chown=65532:65532 /out/data /var/lib/edgerelay
USER 65532:65532
# Set data_dir = "/var/lib/edgerelay" in the mounted configuration.
VOLUME ["/var/lib/edgerelay"]
EXPOSE 8443 9090
ENTRYPOINT ["/usr/local/bin/edgerelay"]
CMD ["run", "-config", "/etc/edgerelay/config.hcl"]
