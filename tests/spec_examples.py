"""The spec's worked signing examples (§3.5): Huawei's published inputs and answers. One home for
the tests of the bridge's verifier, of the simulator's signer and of the signing mutation guards."""

KEY = "demoAccessKey0123456789"
NONCE = "50D83FDECAED6CCD8EF597F2A577950527928BA287D04E6036E92B2806FD17DA"
TS = "1680508066618"

# Kit (V2) interfaces: a tenantSync body as sent, its canonical form, and the x-sign over it.
TENANT_SYNC_RAW = (
    '{"instanceId":"huaiweitest123456","orderId":"CS1906666666ABCDE","tenantId":"68cbc86abc2018ab880d92f36422fa0e",'
    '"tenantCode":"huawei","name":"huaiweitest","domainName":"https://example.tenantaccount.com",'
    '"flag":1,"testFlag":0,"timeStamp":"20220413093539534"}'
)
TENANT_SYNC_CANONICAL = (
    '{"domainName":"https://example.tenantaccount.com","flag":1,"instanceId":"huaiweitest123456",'
    '"name":"huaiweitest","orderId":"CS1906666666ABCDE","tenantCode":"huawei",'
    '"tenantId":"68cbc86abc2018ab880d92f36422fa0e","testFlag":0,"timeStamp":"20220413093539534"}'
)
KIT_SIGNATURE = "4FF248550C5E31F2AE73371AC3010096CBE2ACD1FB371C3285BF8204C5CEAC53"

# Basic interfaces: a newInstance body, the HMAC of its canonical form, and the query signature.
NEW_INSTANCE = {"activity": "newInstance", "businessId": "87b94795-0603-4e24-8ae5-69420d60e3c8",
                "orderId": "CS2211181819B4LVS", "orderLineId": "CS2211181819B4LVS-000001", "testFlag": "1"}
NEW_INSTANCE_HMAC = "f3f6b4d6499a0976ee7bacb84f4a7122a38cfafc35ab69462716154e41fe83b3"
BASIC_SIGNATURE = "14e1d263ff0625d4b303482d00106e1febf7798c8f4b2fcff774daa7a1d4f7f2"
