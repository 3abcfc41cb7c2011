# Huawei AICC behind the relay: Gupshup calls the relay, the relay calls
# AICC's WhatsApp adapter with the webhook password AICC's channel page
# shows, one channel id per AICC channel in the path; AICC's own calls
# to KooMessage go out through the relay, which logs in to Huawei IAM.
data_dir = "./data"

listener "public" {
  address = "0.0.0.0:8443"
  tls {
    self_signed = true                    # use acme { … } or cert_file in production
  }
}

listener "internal" {
  address = "127.0.0.1:8080"
}

channel "aicc-gupshup" {
  listener = "public"
  path     = "/hooks/aicc/*"              # /hooks/aicc/<AICC channel id>
  provider = "gupshup"
  auth "header" {
    name    = "Authorization"
    values  = [env("GUPSHUP_CALLBACK_TOKEN", "change-me")]
    expires = "2027-06-30"
  }
  forward_to = ["aicc"]
}

backend "aicc" {
  url = "https://aicc.internal:18443/social/on/whatsapp/gupshup/message{path}{query}"
  inject "header" {                       # AICC compares Authorization with its webhook password
    name  = "Authorization"
    value = env("AICC_WEBHOOK_PASSWORD", "change-me")
  }
  trust_system_roots = true
  rate               = "100/s"
}

upstream "koomessage" {                   # AICC → relay → KooMessage API
  listener    = "internal"
  path        = "/out/koomessage/"
  base_url    = "https://api.koomessage.example.com"
  allow_paths = ["/v1/**"]
  inject "huawei_iam" {
    iam_url  = "https://iam.ap-southeast-1.myhuaweicloud.com"
    domain   = env("HUAWEI_IAM_DOMAIN", "acme")
    username = env("HUAWEI_IAM_USER", "relay")
    password = env("HUAWEI_IAM_PASSWORD", "change-me")
    project  = "ap-southeast-1"
  }
  proxy = "http://proxy.dmz.example:3128" # the DMZ reaches the internet only through it
  rate  = "20/s"
}
