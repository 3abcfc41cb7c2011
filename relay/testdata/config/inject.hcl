# The mistakes an operator makes with backend credentials, proxies, rates
# and URL placeholders; every one is reported at once, at its place.
data_dir = "./data"
listener "public" { address = "127.0.0.1:8443" }
listener "internal" { address = "127.0.0.1:8080" }
channel "kore" {
  listener   = "public"
  path       = "/hooks/kore/*/x"
  auth "none" {}
  forward_to = ["kore", "aicc", "webex", "koo"]
}
backend "kore" {
  url = "https://{path}.kore.example/hooks{query}"
  inject "jwt" {
    algorithm = "HS257"
    secret    = "s3cret-jwt"
  }
  rate = "fast"
}
backend "aicc" {
  url = "https://aicc.example/ccmessaging{path}{query}{tenant}"
  inject "jwt" {
    algorithm = "HS256"
  }
  inject "hmac" {
    secret    = ""
    algorithm = "md5"
    encoding  = "base32"
  }
  proxy = "socks5://proxy.dmz:1080"
  rate  = "10/h"
}
backend "webex" {
  url = "https://webex.example/callbacks"
  inject "header" {
    name    = "X-Api-Key"
    value   = "s3cret-key"
    expires = "31/12/2027"
  }
  inject "bearer" {
    token   = "s3cret-token"
    expires = "next year"
  }
  inject "jwt" {
    algorithm        = "RS256"
    private_key_file = "no-such-key.pem"
  }
  headers = { "X-Relay-Channel" = "spoofed" }
  proxy   = "proxy.dmz:3128"
}
backend "koo" {
  url = "https://koo.example/v1{path}"
  inject "huawei_iam" {
    iam_url  = "iam.example"
    domain   = "acme"
    username = "relay"
    password = ""
  }
  inject "kerberos" {}
  rate = "0/s"
}
upstream "graph" {
  listener    = "internal"
  path        = "/out/graph/"
  base_url    = "https://graph.facebook.com"
  allow_paths = ["/**"]
  proxy       = "ftp://proxy.dmz:21"
  rate        = "-5/m"
}
