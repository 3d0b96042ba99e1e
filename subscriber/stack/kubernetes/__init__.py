"""Real Kubernetes control planes for tests and local trials: etcd, kube-apiserver,
kube-controller-manager and kube-scheduler, with kwok simulating the nodes and kubelets.

:mod:`~subscriber.stack.kubernetes.build` builds the binaries once per machine;
:mod:`~subscriber.stack.kubernetes.cluster` starts and stops one cluster on loopback ports.
"""
