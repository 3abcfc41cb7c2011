# edgerelay for Infobip.
#
# One channel of provider "infobip" behind a managed (ACME) certificate,
# delivering to an internal CRM with a Standard Webhooks signature. Secrets
# come from the environment (for systemd: an EnvironmentFile, see
# dist/edgerelay.service). Check it with
#
#   edgerelay validate -config examples/infobip.hcl
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

channel "infobip" {
  listener = "public"
  path     = "/hooks/infobip"
  provider = "infobip"
  # Infobip calls with HTTP Basic credentials configured on its side.
  auth "basic" {
    user "infobip" {
      password = env("INFOBIP_WEBHOOK_PASSWORD")
      expires  = "2027-12-31"               # warned about before, refused after: plan the rotation
    }
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
