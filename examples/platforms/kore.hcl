# Kore.ai behind the relay: Gupshup calls one relay URL per Kore stream
# (/hooks/kore/<stream id>), the relay calls Kore's WhatsApp webhook for that
# stream with a fresh JWT signed by the app associated with the channel.
data_dir = "./data"

listener "public" {
  address = "0.0.0.0:8443"
  tls {
    self_signed = true                    # use acme { … } or cert_file in production
  }
}

channel "kore-gupshup" {
  listener = "public"
  path     = "/hooks/kore/*"
  provider = "gupshup"                    # reads waNumber (route) and mobile (order key)
  auth "header" {
    name   = "Authorization"
    values = [env("GUPSHUP_CALLBACK_TOKEN", "change-me")]
  }
  forward_to = ["kore"]                   # route { when = { waNumber = "…" } … } splits by business number
}

backend "kore" {
  url = "https://bots.kore.ai/chatbot/hooks{path}{query}"
  inject "jwt" {                          # "Associate an App": client id and secret of that app
    algorithm = "HS256"
    secret    = env("KORE_CLIENT_SECRET", "change-me")
    claims = {
      appId = env("KORE_CLIENT_ID", "cs-00000000-0000-0000-0000-000000000000")
      sub   = "edgerelay"
    }
    ttl = "5m"
  }
  trust_system_roots = true
  proxy              = "env"              # HTTPS_PROXY / NO_PROXY of the service
  rate               = "50/s"
}
