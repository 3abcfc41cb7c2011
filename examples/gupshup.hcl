# edgerelay for Gupshup.
#
# One channel of provider "gupshup" behind a managed (ACME) certificate,
# delivering to an internal CRM with a Standard Webhooks signature. Secrets
# come from the environment (for systemd: an EnvironmentFile, see
# dist/edgerelay.service). Check it with
#
#   edgerelay validate -config examples/gupshup.hcl
#
# What the profile reads (event id, order key, route fields, default auth):
# relay/profile/PROFILES.md. Every attribute and its default: README.md.

data_dir = "/var/lib/edgerelay"             # the systemd unit's StateDirectory

listener "public" {
  address = "0.0.0.0:443"
  tls {
    acme {
      domains = ["hooks.example.com"]
      email   = "ops@example.com"
    }
  }
}

admin {
  address = "127.0.0.1:9090"                 # loopback: edgerelay dlq/certs -admin 127.0.0.1:9090
}

channel "gupshup" {
  listener = "public"
  path     = "/hooks/gupshup"
  provider = "gupshup"
  # Gupshup sends a fixed token in a header (Authorization by default).
  auth "header" {
    values = [env("GUPSHUP_WEBHOOK_TOKEN")]
  }
  forward_to = ["crm"]
}

backend "crm" {
  url = "https://crm.internal:9443/whatsapp/events"
  sign {
    secret = env("BACKEND_SIGNING_SECRET")   # whsec_...: the CRM checks the relay's signature
  }
  # trust_store = ["/etc/edgerelay/trust/internal-ca.pem"]   # the internal CA (default: system roots)
}
