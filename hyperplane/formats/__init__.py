"""Every reader and writer of the outside world, one module per format and direction.

- ``capture``: what a capture holds, shared by its reader and writer (chunks of packet rows,
  packet kinds, interfaces, link types, ``CaptureError``);
- ``pcap_reader``: reads classic pcap and pcapng files, streaming, into capture chunks;
- ``pcap_writer``: writes classic pcap or pcapng files from capture chunks and translated records;
- ``pcap``: the public face of the three above (``hyperplane.pcap``);
- ``flow_log_files``: writes and reads VPC flow log files, as CloudWatch Logs streams and as S3
  delivery files (the record and the log format with them); the aggregator that makes the records
  is ``hyperplane.dataplane.flow_logs`` (``hyperplane.flowlogs``).
- ``topology_reader``: reads our topology files (YAML/JSON) into a Topology, through
  ``topology_resources`` (each resource, AWS's defaults) and ``_topology_fields`` (the schema);
- ``topology_writer``: writes a Topology as a topology file, every default spelled out;
- ``snapshot_reader``: reads a folder of AWS describe-* JSON into a Topology, through
  ``snapshot_resources`` (VPCs, subnets, ENIs, gateways, endpoints, functions), ``snapshot_rules``
  (security groups, network ACLs, route tables) and ``_snapshot_fields`` (typed JSON access);
- ``snapshot_report``: what a snapshot held and what of it was loaded (``SnapshotReport``);
- ``snapshot_writer``: writes a Topology as a describe-* folder;
- ``boto3_collect``: the same documents from a live account (or moto) through boto3;
- ``cloudformation_reader``: reads CloudFormation templates (YAML/JSON), SAM templates (through
  aws-sam-translator) and CDK ``cdk.out`` assemblies into a Topology, through
  ``cloudformation_stack`` (one stack: properties, ``Ref``/``GetAtt``, the document and where each
  part came from), ``cloudformation_intrinsics`` (the table of intrinsic functions),
  ``cloudformation_resources`` (each resource type) and ``cloudformation_links`` (routes, rules,
  associations, attachments, versions; the addresses);
- ``cloudformation_writer``: writes a Topology as a CloudFormation template;
- ``terraform_reader``: reads ``terraform show -json`` plans and states into a Topology, through
  ``terraform_document`` (the instances, their values and expression references),
  ``terraform_resources`` (the document being built: ids, what an attribute names, where each
  part came from), ``terraform_network`` (VPCs, subnets, routes, gateways, endpoints, groups,
  NACLs), ``terraform_interfaces`` (ENIs, instances, databases, caches, functions) and
  ``terraform_rules`` (rule and route fields);
- ``terraform_writer``: writes a Topology as the ``terraform show -json`` of a state;
- ``aws_prefix_lists``: the S3 and DynamoDB ranges AWS publishes (``data/``), for the AWS-managed
  prefix lists an input leaves without entries;
- ``_iac``: what the CloudFormation and Terraform readers share (synthesized ids, the first free
  address, the report of what is not emulated);
- ``inputs``: which reader an input needs, told by its content (``Network.load``, ``--topology``);
- ``_source``: decoding and JSON/YAML parsing shared by the readers (errors with line and column).
``hyperplane.loaders`` is the public face of the topology and snapshot modules.
"""
