# The tool alone in an image: the linux-x64 binary, the glibc libraries it loads, CA certificates
# and a non-root user; no shell, no package manager. Build from a checkout after the binaries:
#
#   deno task build --target linux-x64 && deno task image
#   podman build -t oai-compliance-logs .        # or: docker build -t oai-compliance-logs .
#   podman run --rm -e COMPLIANCE_API_KEY_FILE=/run/secrets/key -v ./key:/run/secrets/key:ro \
#     oai-compliance-logs <workspace_or_org_id> AUTH_LOG 100 24h > auth.jsonl
#
# dist/image-rootfs/ is assembled by scripts/image.ts; FROM scratch needs no base image to pull.
FROM scratch
COPY dist/image-rootfs/ /
USER 65532:65532
ENV TMPDIR=/tmp HOME=/home/nonroot
ENTRYPOINT ["/usr/local/bin/oai-compliance-logs"]
