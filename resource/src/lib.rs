//! What a resource server checks in a token the broker obtained. (Being built.)
