"""A Fabric stand-in for CI: a test peer, orderer and Gateway around the REAL chaincode.

Nothing here is a test module (pytest collects ``test_*.py`` only). The pieces:

- :mod:`.state`     versioned world state, transaction simulation, MVCC / phantom validation;
- :mod:`.shim`      a peer's side of the chaincode shim protocol (``protos.Chaincode/Connect``),
                    dialing the chaincode process that runs as a service;
- :mod:`.peer`      an endorsing peer: proposal checks, simulation, signed proposal responses;
- :mod:`.ledger`    orderer and committer: blocks, validation codes, chaincode events;
- :mod:`.gateway`   the ``gateway.Gateway`` gRPC service over all of the above;
- :mod:`.chaincode` starting the built chaincode (``fabric-chaincode-node server``).
"""
