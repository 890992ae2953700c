# 借助第三方的模块
from socket import socket, AF_INET, SOCK_DGRAM

# 创建 服务端对象
server = socket(family=AF_INET, type=SOCK_DGRAM)

addr = "127.0.0.1"
prot = 9696
server.bind((addr, prot))
data_from_client, client_address = server.recvfrom(1024)

print(f"data_from_client :>>>> {data_from_client.decode()}")
data_to_client = data_from_client.decode().upper()
server.sendto(data_to_client.encode("utf-8"), client_address)
