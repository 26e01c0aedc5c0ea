"""Name pools: every variant draws its namespace, services, nodes and registry from these, so no
scenario can be recognised by a fixed name."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Domain:
    namespaces: tuple[str, ...]
    entries: tuple[str, ...]
    mids: tuple[str, ...]
    leaves: tuple[str, ...]
    databases: tuple[str, ...]
    caches: tuple[str, ...]
    externals: tuple[str, ...]
    teams: tuple[str, ...]
    nouns: tuple[str, ...]  # what the API paths talk about


DOMAINS = (
    Domain(
        namespaces=("shop", "storefront-prod", "commerce"),
        entries=("storefront", "web-frontend", "shop-gateway"),
        mids=("checkout", "cart", "orders", "catalog", "pricing"),
        leaves=("inventory", "shipping-quotes", "recommendations", "promotions", "tax-calculator"),
        databases=("orders-db", "shop-postgres", "catalog-pg"),
        caches=("cart-cache", "session-redis", "catalog-cache"),
        externals=("api.stripe.com", "api.shippo.com", "api.avalara.com"),
        teams=("storefront", "checkout-squad", "commerce-platform"),
        nouns=("orders", "carts", "products", "quotes", "items"),
    ),
    Domain(
        namespaces=("payments", "billing", "fintech-prod"),
        entries=("payments-gateway", "billing-api", "merchant-api"),
        mids=("payments-api", "ledger", "invoicing", "payouts", "settlement"),
        leaves=("fraud-check", "risk-scoring", "card-vault", "fx-rates", "statements"),
        databases=("ledger-db", "payments-postgres", "billing-pg"),
        caches=("idempotency-cache", "rates-redis", "token-cache"),
        externals=("api.adyen.com", "api.wise.com", "checkout-test.braintreegateway.com"),
        teams=("payments-core", "billing", "money-movement"),
        nouns=("payments", "invoices", "transfers", "accounts", "charges"),
    ),
    Domain(
        namespaces=("media", "streaming", "video-prod"),
        entries=("media-gateway", "playback-api", "web-player"),
        mids=("playlist", "metadata", "uploads", "catalogue", "entitlements"),
        leaves=("thumbnailer", "subtitles", "drm-license", "watch-history", "cdn-signer"),
        databases=("media-db", "metadata-postgres", "assets-pg"),
        caches=("manifest-cache", "playback-redis", "session-cache"),
        externals=("s3.eu-west-1.amazonaws.com", "api.mux.com", "license.widevine.com"),
        teams=("playback", "media-platform", "content-delivery"),
        nouns=("videos", "manifests", "tracks", "assets", "sessions"),
    ),
    Domain(
        namespaces=("travel", "bookings", "trips"),
        entries=("booking-web", "travel-gateway", "trips-bff"),
        mids=("booking-api", "availability", "quotes", "itinerary", "fares"),
        leaves=("flight-search", "hotel-search", "loyalty", "currency", "seat-map"),
        databases=("bookings-db", "trips-postgres", "fares-pg"),
        caches=("availability-cache", "fares-redis", "search-cache"),
        externals=("api.amadeus.com", "api.sabre.com", "api.exchangerate.host"),
        teams=("booking", "search", "trips-core"),
        nouns=("bookings", "offers", "itineraries", "fares", "rooms"),
    ),
    Domain(
        namespaces=("logistics", "fulfillment", "delivery"),
        entries=("tracking-web", "dispatch-gateway", "ops-portal"),
        mids=("dispatch", "tracking", "warehouse-api", "labels", "returns"),
        leaves=("route-planner", "carrier-rates", "eta-predictor", "geocoder", "manifests"),
        databases=("fleet-db", "shipments-postgres", "warehouse-pg"),
        caches=("tracking-cache", "geo-redis", "rates-cache"),
        externals=("api.ups.com", "api.dhl.com", "maps.googleapis.com"),
        teams=("fulfillment", "last-mile", "warehouse"),
        nouns=("shipments", "parcels", "routes", "labels", "stops"),
    ),
    Domain(
        namespaces=("social", "community", "feed-prod"),
        entries=("web-feed", "api-gateway", "mobile-bff"),
        mids=("timeline", "profiles", "messaging", "follow-graph", "comments"),
        leaves=("notifications", "media-upload", "search-index", "moderation", "link-preview"),
        databases=("profiles-db", "social-postgres", "messages-pg"),
        caches=("timeline-redis", "counters-cache", "presence-cache"),
        externals=("fcm.googleapis.com", "api.push.apple.com", "api.sendgrid.com"),
        teams=("feed", "identity", "messaging"),
        nouns=("posts", "profiles", "threads", "comments", "likes"),
    ),
)

REGISTRIES = (
    "registry.internal.example.com",
    "ghcr.io/example-org",
    "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
    "europe-docker.pkg.dev/prod-apps/images",
)


@dataclass(frozen=True)
class Cluster:
    flavor: str
    node_names: tuple[str, ...]
    zones: tuple[str, ...]
    instance_type: str
    kubelet: str
    pod_cidr: str  # first two octets


def cluster(rng: random.Random, count: int) -> Cluster:
    flavor = rng.choice(("eks", "gke", "aks", "kubeadm"))
    names: list[str] = []
    if flavor == "eks":
        region = rng.choice(("eu-west-1", "us-east-1", "ap-southeast-2"))
        for _ in range(count):
            ip = f"10-0-{rng.randrange(16, 200)}-{rng.randrange(2, 254)}"
            names.append(f"ip-{ip}.{region}.compute.internal")
        zones = tuple(f"{region}{z}" for z in "abc")
        itype, cidr = rng.choice(("m6i.xlarge", "m5.2xlarge", "c6i.2xlarge")), "10.0"
    elif flavor == "gke":
        pool = rng.choice(("default-pool", "apps-pool", "general-n2"))
        group = "".join(rng.choice("0123456789abcdef") for _ in range(8))
        for _ in range(count):
            suffix = "".join(rng.choice("bcdfghjklmnpqrstvwxz") for _ in range(4))
            names.append(f"gke-prod-{pool}-{group}-{suffix}")
        zones = tuple(f"europe-west4-{z}" for z in "abc")
        itype, cidr = rng.choice(("n2-standard-4", "e2-standard-8")), "10.8"
    elif flavor == "aks":
        pool = rng.choice(("nodepool1", "apps", "userpool"))
        vmss = rng.randrange(10_000_000, 99_999_999)
        start = rng.randrange(0, 20)
        names = [f"aks-{pool}-{vmss}-vmss{start + i:06x}" for i in range(count)]
        zones = ("westeurope-1", "westeurope-2", "westeurope-3")
        itype, cidr = rng.choice(("Standard_D4s_v5", "Standard_D8s_v5")), "10.244"
    else:
        prefix = rng.choice(("worker", "k8s-node", "prod-worker"))
        start = rng.randrange(1, 9)
        names = [f"{prefix}-{start + i:02d}" for i in range(count)]
        zones = ("dc1-rack-a", "dc1-rack-b", "dc1-rack-c")
        itype, cidr = "bare-metal", "10.42"
    kubelet = rng.choice(("v1.29.8", "v1.30.4", "v1.31.2"))
    return Cluster(flavor, tuple(names), zones, itype, kubelet, cidr)
