# The tool alone in an image: the linux-x64 binary, the glibc libraries it loads, CA certificates
# and a non-root user; no shell, no package manager. Build from a checkout after the binaries:
#
#   deno task build --target linux-x64 && deno task image
#   docker build -t oai-compliance-logs .        # or: podman build -t oai-compliance-logs .
#   docker run --rm --user "$(id -u):$(id -g)" \
#     -e COMPLIANCE_API_KEY_FILE=/run/secrets/key -v "$PWD/key:/run/secrets/key:ro" \
#     oai-compliance-logs <workspace_or_org_id> AUTH_LOG 100 24h > auth.jsonl
#
# (--user: the key file, readable only by its owner, is read as that owner; the image's own user
# 65532 could not read it.)
#
# dist/image-rootfs.tar is the whole file system, packed by scripts/image.ts; FROM scratch needs no
# base image to pull. ADD unpacks it with its owners (COPY would make every file root's, and
# without a shell there is no RUN chown): /home/nonroot belongs to 65532. .dockerignore sends
# only that tar as the build context.
FROM scratch
ADD dist/image-rootfs.tar /
USER 65532:65532
ENV TMPDIR=/tmp HOME=/home/nonroot
ENTRYPOINT ["/usr/local/bin/oai-compliance-logs"]
