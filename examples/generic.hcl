# edgerelay for any other sender: HMAC of the body in a header of your choice.
#
# One channel of provider "generic" behind a managed (ACME) certificate,
# delivering to an internal CRM with a Standard Webhooks signature. Secrets
# come from the environment (for systemd: an EnvironmentFile, see
# dist/edgerelay.service). Check it with
#
#   edgerelay validate -config examples/generic.hcl
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

channel "generic" {
  listener = "public"
  path     = "/hooks/generic"
  provider = "generic"
  # The generic profile knows no payload: say where the event id (de-duplication)
  # and the order key (per-sender ordering) are, if the sender has them.
  event_id_header  = "X-Event-Id"
  order_key_header = "X-Customer-Id"
  auth "hmac" {
    header    = "X-Signature"
    algorithm = "sha256"
    encoding  = "hex"
    secrets   = [env("GENERIC_WEBHOOK_SECRET")]
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
