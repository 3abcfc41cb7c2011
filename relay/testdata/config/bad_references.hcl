data_dir = "./data"

listener "public" {
  address = "127.0.0.1:8443"
}

channel "meta" {
  listener = "pubic"
  path     = "/hooks/meta"
  provider = "meta"
  auth "hmac" {
    secrets = ["s3cret"]
  }
  forward_to = ["crn"]
}

channel "meta-2" {
  listener = "public"
  path     = "/hooks/meta"
  provider = "meta"
  auth "hmac" {
    secrets = ["x"]
  }
  forward_to = ["crm"]
}

backend "crm" {
  url = "http://127.0.0.1:9800/"
}

channel "meta-3" {
  listener = "public"
  path     = "/hooks/meta"
  provider = "meta"
  auth "hmac" {
    secrets = ["y"]
  }
  forward_to = ["crm"]
}
