"""Scanning an image: index its layers (each layer once: the result is kept by digest and indexer version),
match the packages against the vulnerability database, keep the findings; and the jobs that do it for one
image, for all images, and again for every stored index when the database changed (no layer downloaded).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from portal.core.errors import DomainError
from portal.core.jobs import JobContext
from portal.core.models import Job
from registries.client import RegistryClient
from scanning import indexer, matcher, remote
from scanning.findings import store_findings
from scanning.indexer import INDEXER_VERSION, ImageIndex, LayerIndex
from scanning.models import ImageScan, IndexedLayer, ScannerKind, ScanState, Severity
from scanning.services.scanners import scanner_for_repository
from scanning.services.scans import images_to_scan

# The digest algorithm whose layers the indexer checks byte for byte (scanning.indexer.index_layer).
VERIFIED_DIGEST = "sha256:"


def stored_layers(digests: Iterable[str]) -> dict[str, LayerIndex]:
    """The layers indexed before by this indexer version, by digest."""
    rows = IndexedLayer.objects.filter(digest__in=list(digests), indexer_version=INDEXER_VERSION)
    return {row.digest: LayerIndex.from_dict(row.result) for row in rows}


def _keep_layer(layer: LayerIndex) -> None:
    """Store a layer's index for every later scan (another worker may have stored it meanwhile)."""
    try:
        with transaction.atomic():
            IndexedLayer.objects.create(digest=layer.digest, indexer_version=INDEXER_VERSION, result=layer.as_dict())
    except IntegrityError:
        pass


def index_reference(
    client: RegistryClient,
    repository: str,
    reference: str,
    context: JobContext | None = None,
    *,
    trusted: bool = True,
) -> tuple[list[str], ImageIndex]:
    """The layer digests and index of an image in any registry: stored layers read from the database, the others
    downloaded once and stored for every later scan, whichever registry holds them (a layer is its digest).

    From a registry that is not `trusted` (one a caller of the adapter API named), only layers whose bytes were
    checked against their digest (sha256, which the indexer verifies) are stored: another digest's index could be
    anything that registry chose to serve, and would be served to every later scan of a layer of that digest."""
    resolved = indexer.resolve_image(client, repository, reference)
    known = stored_layers(resolved.layers)
    layers = []
    for number, digest in enumerate(resolved.layers, 1):
        if context is not None:
            context.checkpoint()
        layer = known.get(digest)
        if layer is None:
            layer = indexer.read_layer(client, repository, digest)
            if trusted or digest.startswith(VERIFIED_DIGEST):
                _keep_layer(layer)
        layers.append(layer)
        if context is not None:
            context.progress(number, len(resolved.layers))
    return list(resolved.layers), indexer.index_image(layers)


def index_image(client: RegistryClient, scan: ImageScan, context: JobContext | None = None) -> ImageIndex:
    """The image's index from its layers: stored ones read from the database, the others downloaded once."""
    scan.layers, image = index_reference(client, scan.repository, scan.digest, context)
    return image


def match_image(scan: ImageScan, image: ImageIndex) -> ImageScan:
    """Match the index against the vulnerability database and keep the findings (replacing the last ones)."""
    findings = matcher.match(image.distribution, image.packages)
    distribution = image.distribution.pretty_name or image.distribution.id if image.distribution else ""
    scan.index = image.as_dict()
    return store_findings(scan, findings, distribution, len(image.packages))


def scan(scan: ImageScan, context: JobContext | None = None, client: RegistryClient | None = None) -> ImageScan:
    """Scan one image with its project's scanner (or the default): the built-in one indexes and matches here, a
    remote one (Clair v4, a Harbor adapter) is asked through its client. The scan row ends SUCCEEDED, or FAILED
    with the reason (and the error raised: the job retries what may pass). A remote scanner's failure never leaves
    the image looking clean: its earlier verdict is withdrawn (matched cleared), so the run policy refuses it as
    an image that could not be scanned."""
    registration = scanner_for_repository(scan.repository)
    ImageScan.objects.filter(pk=scan.pk).update(state=ScanState.RUNNING)
    if not registration.builtin:
        return remote.scan_with(scan, registration, context)
    try:
        image = index_image(client or RegistryClient(), scan, context)
    except DomainError as exc:
        ImageScan.objects.filter(pk=scan.pk).update(state=ScanState.FAILED, error=exc.message[:2000])
        raise
    scan.scanned = timezone.now()
    scan.scanner, scan.scanner_name, scan.scanner_kind = registration, registration.name, registration.kind
    scan.remote_state = ""
    return match_image(scan, image)


def summary_line(image_scan: ImageScan) -> str:
    """What a scan found, in words."""
    counts = ", ".join(
        f"{image_scan.summary[severity]} {severity.lower()}"
        for severity in reversed(Severity.values)
        if image_scan.summary.get(severity)
    )
    found = counts or "no known vulnerabilities"
    return f"{image_scan.repository}@{image_scan.digest[:19]}: {image_scan.package_count} packages, {found}"


# --- the jobs ------------------------------------------------------------------------------------------


def run_scan(job: Job, context: JobContext) -> str:
    """One image's scan job."""
    image_scan = ImageScan.objects.get(pk=context.parameters["scan"])
    return summary_line(scan(image_scan, context))


def run_scan_all(job: Job, context: JobContext) -> str:
    """Every tagged image, one after the other; an image that cannot be read fails alone and the rest go on.

    A fault of the registry itself (unreachable, 5xx) fails the attempt and the job retries; images scanned
    since this job started are not scanned again. A remote scanner's fault fails its image alone, with the reason.
    """
    images = list(images_to_scan())
    client = RegistryClient()
    failed = 0
    for done, (digest, repository) in enumerate(images, 1):
        context.checkpoint()
        image_scan, _ = ImageScan.objects.get_or_create(digest=digest, defaults={"repository": repository})
        if not (job.started and image_scan.scanned and image_scan.scanned >= job.started):
            image_scan.repository = repository
            try:
                scan(image_scan, None, client)
            except DomainError as exc:
                # The registry down fails the attempt (every image needs it); a remote scanner down fails only
                # the images of the projects using it.
                if getattr(exc, "transient", False) and not getattr(exc, "remote_scanner", None):
                    raise
                failed += 1
                context(f"{repository}@{digest}: {exc.message}")
        context.progress(done, len(images))
    return f"{len(images)} images scanned" + (f", {failed} could not be read" if failed else "")


def run_rematch(job: Job, context: JobContext) -> str:
    """Match every stored image index again (the vulnerability database changed): no layer is downloaded.

    Only the built-in scanner's scans have an index to match (a remote scanner keeps its own database): the
    images a remote scanner scanned are scanned by it again on Scan Now, the daily schedule or a push."""
    builtin = Q(scanner_kind="") | Q(scanner_kind=ScannerKind.BUILTIN)
    succeeded = ImageScan.objects.filter(builtin, state=ScanState.SUCCEEDED).exclude(index={})
    scans = list(succeeded.values_list("pk", flat=True))
    for done, pk in enumerate(scans, 1):
        context.checkpoint()
        image_scan = ImageScan.objects.get(pk=pk)
        match_image(image_scan, ImageIndex.from_dict(image_scan.index))
        context.progress(done, len(scans))
    return f"{len(scans)} images matched again"
