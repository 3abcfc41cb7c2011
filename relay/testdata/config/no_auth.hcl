data_dir = "./data"

listener "public" {
  address = "127.0.0.1:8443"
}

channel "open" {
  listener   = "public"
  path       = "/hooks/open"
  provider   = "infobip"
  forward_to = ["crm"]
}

channel "route-only" {
  listener = "public"
  path     = "/hooks/route"
  provider = "meta"
  auth "hmac" {
    secrets = ["s"]
  }
  auth "sha-magic" {
  }
  route {
    when       = { phone_number = "1" }
    forward_to = ["crm"]
  }
}

backend "crm" {
  url = "http://127.0.0.1:9800/"
}
