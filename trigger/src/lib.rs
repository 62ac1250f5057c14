//! Cognito's pre-token-generation trigger (event version V3_0): writes the broker's verified caller claims into the
//! access token of a client-credentials grant. (Being built.)
