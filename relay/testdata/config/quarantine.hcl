data_dir = "./data"
listener "public" { address = "127.0.0.1:0" }
channel "a" {
  listener   = "public"
  path       = "/a"
  provider   = "meta"
  auth "hmac" { secrets = ["x"] }
  quarantine {
    max_size = "lots"
    keep     = "forever"
  }
  forward_to = ["crm"]
}
channel "b" {
  listener   = "public"
  path       = "/b"
  provider   = "meta"
  auth "hmac" { secrets = ["x"] }
  quarantine {
    max_size = "4KiB"
    keep     = "0s"
    color    = "red"
  }
  forward_to = ["crm"]
}
backend "crm" { url = "http://127.0.0.1:9/" }
