# edgerelay for Meta WhatsApp Cloud API.
#
# One channel of provider "meta" behind a managed (ACME) certificate,
# delivering to an internal CRM with a Standard Webhooks signature. Secrets
# come from the environment (for systemd: an EnvironmentFile, see
# dist/edgerelay.service). Check it with
#
#   edgerelay validate -config examples/meta.hcl
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

channel "meta" {
  listener = "public"
  path     = "/hooks/meta"
  provider = "meta"
  # App Dashboard > WhatsApp > Configuration: callback URL https://hooks.example.com/hooks/meta,
  # the verify token below; the app secret signs every callback (X-Hub-Signature-256).
  auth "hmac" {
    # Any one may match: add the new secret first and keep the old one while you rotate.
    secrets = [env("META_APP_SECRET"), env("META_APP_SECRET_OLD", "")]
  }
  verify_token = env("META_VERIFY_TOKEN")   # answers Meta's GET hub.challenge handshake
  forward_to   = ["crm"]
  route {                                   # one number to its own bot; the rest to the CRM
    when       = { phone_number_id = "106540352242922" }
    forward_to = ["crm", "sales-bot"]
  }
}

backend "crm" {
  url = "https://crm.internal:9443/whatsapp/events"
  sign {
    secret = env("BACKEND_SIGNING_SECRET")   # whsec_...: the CRM checks the relay's signature
  }
  # trust_store = ["/etc/edgerelay/trust/internal-ca.pem"]   # the internal CA (default: system roots)
}

backend "sales-bot" {
  url = "https://bots.internal:8443/whatsapp"
  sign {
    secret = env("BACKEND_SIGNING_SECRET")
  }
  # trust_store = ["/etc/edgerelay/trust/internal-ca.pem"]   # the internal CA (default: system roots)
}
