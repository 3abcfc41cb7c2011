# Webex Connect behind the relay: Meta calls the relay, the relay forwards
# the callback unchanged to Webex Connect's inbound webhook, signed again
# with the app secret Webex Connect checks (Meta's X-Hub-Signature-256).
data_dir = "./data"

listener "public" {
  address = "0.0.0.0:8443"
  tls {
    self_signed = true                    # use acme { … } or cert_file in production
  }
}

channel "meta-webex" {
  listener = "public"
  path     = "/hooks/meta/webex"
  provider = "meta"
  auth "hmac" {
    secrets = [env("META_APP_SECRET", "change-me")]
  }
  verify_token = env("META_VERIFY_TOKEN", "change-me")
  forward_to   = ["webex"]
}

backend "webex" {
  url = "https://hooks.us.webexconnect.io/events/ABCDEF123456"
  inject "hmac" {
    secret    = env("WEBEX_APP_SECRET", "change-me")
    header    = "X-Hub-Signature-256"
    algorithm = "sha256"
    encoding  = "hex"
    prefix    = "sha256="
  }
  headers            = { "X-Tenant" = "acme" }
  trust_system_roots = true
  proxy              = "http://proxy.dmz.example:3128"
  rate               = "200/s"
}
